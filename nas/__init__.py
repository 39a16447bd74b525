"""nas: neural architecture search for mixed-kernel (MixConv) networks."""
