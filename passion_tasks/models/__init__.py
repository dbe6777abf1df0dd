"""Models: the registry of trained versions, training them, and scoring days with the live ones."""
