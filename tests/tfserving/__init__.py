"""A TF Serving stand-in for the tests (the real binary is not installable here), its process, and SavedModels."""
