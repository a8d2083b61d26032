"""Building blocks shared by the methods: rendering, occupancy, per-frame state."""
