"""The seed's core classes: HardwareDetector, ModelManager, FineTuner."""
