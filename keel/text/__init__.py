"""Documents as text: parsing every supported format into sections, and token-aware chunking."""
