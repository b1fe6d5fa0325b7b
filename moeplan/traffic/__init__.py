"""What crosses the wires in expert parallelism: all-to-all bytes (closed forms, uniform routing) and a
seeded routing simulation for skew, capacity and experts touched. numpy only."""
