"""The engine: device buffers and compiled programs per backend, realizing a schedule, and tg.jit's replay."""
