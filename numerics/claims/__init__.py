"""Claims of the papers, the checks that decide them, and the verdict rules."""
