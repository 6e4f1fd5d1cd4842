"""Text-to-speech worker service."""
