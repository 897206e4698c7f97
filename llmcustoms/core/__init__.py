"""The facade and the plan: ``FineTuner`` (data → model → train → test in a few calls, the seed's
public API) and ``planner`` (the plan a user sees before training: hardware, model, preset, memory,
time, whether the model can be had). They call the packages below and own no logic of their own.
"""
