"""The Azure OpenAI emulator as its own uvicorn process (so it shares no GIL with the gateway or the client).

BENCH_EMULATOR_KEY=<key> BENCH_CHUNK_DELAY_MS=<ms> python -m uvicorn emulator:app --app-dir bench/apps
"""

import os

from chatgate.dev.azure_emulator import EmulatorState, create_emulator_app
from chatgate.dev.azure_emulator_reply import preload_encodings

preload_encodings()
app = create_emulator_app(
    EmulatorState(
        api_key=os.environ["BENCH_EMULATOR_KEY"],
        chunk_delay_s=float(os.environ.get("BENCH_CHUNK_DELAY_MS", "0")) / 1000,
    )
)
