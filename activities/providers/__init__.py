"""Message providers behind one interface."""
