"""Search: the mapper over a tree's free parameters and over trees themselves."""
