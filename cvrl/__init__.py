"""cvrl: cross-version audio representation learning for orchestral music."""
