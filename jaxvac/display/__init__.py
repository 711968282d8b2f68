"""What a person sees: progress bars and lines, the catalogue report and its plots."""
