"""The NumPy executor: Einsums on arrays, schedules, precision emulation, validation against references."""
