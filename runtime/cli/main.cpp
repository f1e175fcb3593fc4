// Placeholder entry point while the CLI layer is written (replaced in the same change).
int main() { return 2; }
