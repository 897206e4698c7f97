"""Small shared helpers with no job of their own: settings (``config``), logging, input checks,
free disk space, pausing the garbage collector around bulk allocation, and an even spread of a list
(``sampling``).
"""
