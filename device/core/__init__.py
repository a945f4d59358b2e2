"""The pure core: decide(), state, inputs, effects, events, codes, errors; standard library only.

Every driver, service and the runtime may import from here; this package imports nothing of
the project outside itself."""
