"""What the machine has: GPUs and their memory, CPU features, RAM and free disk, detected here or
in a child process (``probe``), and the configuration recommended for it (``HardwareDetector``).
"""
