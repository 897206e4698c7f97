"""What a run will cost before it starts: the three presets, the peak-memory estimate, and the CPU
step budget (passes over the data capped by minutes, from measured steps).
"""
