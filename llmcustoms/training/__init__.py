"""The training recipe and its launchers: ``trainer.run_training`` reads top to bottom (request →
choices → data → model → train → save → score), with the Trainer subclass (answer-only loss, OOM
back-off), callbacks (events, time cap, knowledge watch, checkpoints, interrupts, a full disk), and
starting a run in a detached process (``detach``, ``worker``) or on several processes (``distributed``).
"""
