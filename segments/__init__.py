"""Level-3 predictive segments: definitions as data, batch and real-time membership, consent, exports."""
