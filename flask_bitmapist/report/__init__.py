"""Reading: event sets and their operators, and cohorts."""
