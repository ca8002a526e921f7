"""Meta-reinforcement learning: environment families whose tasks differ in goal or physics.

``reptile_engine.rl.families`` names the families (``available()``, ``make_family(name)``); each one samples
JSON-serialisable tasks from a caller-supplied ``numpy.random.Generator`` and builds gymnasium environments
whose physics it sets on ``env.unwrapped``.
"""
