"""`python -m chatgate.cli`: the same as the `chatgate` console script."""

from chatgate.cli import main

raise SystemExit(main())
