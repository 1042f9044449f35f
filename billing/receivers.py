"""dj-stripe webhook handlers of the billing app (idempotent, order-independent, thin)."""
