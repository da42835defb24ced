"""What an operator reaches for first: inspect a run, tail a pipe, replay, status.

Each module is a library the `algorail` commands of `algorail.commands.ops` call; they read
the pipeline's topics with consumers that have no group (assign and seek), so they never
move the pipeline's own offsets.
"""
