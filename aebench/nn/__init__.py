"""Building blocks shared by the models: networks, the GMM prior and its losses, adversarial crafting."""
