"""The Triton side: the adapter that runs inside each model's stub, the launcher of the
embedded tritonserver, its watchdog and supervisor, and the model repository (package data)
with the generator that writes it."""
