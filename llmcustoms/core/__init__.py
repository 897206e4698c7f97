"""The public core classes: HardwareDetector (what the machine has), ModelManager (where models come
from), FineTuner (the facade over data → model → train → test), with the planning and model checks they
share."""
