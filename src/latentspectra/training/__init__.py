"""Training of the networks: one job per network (classifier, GAN, encoder, autoencoder), the resumable
epoch loop they share, and the training state it saves after every epoch."""
