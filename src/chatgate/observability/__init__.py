"""What chatgate tells its operators: one observation per request (`observation.py`), from which the log
lines (`logs.py`, Powertools' Logger), the metrics line (`metrics.py`, Powertools' EMF) and the X-Ray
subsegment (`tracing.py`) are made."""
