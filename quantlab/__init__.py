"""quantlab."""
