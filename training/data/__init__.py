"""Training datasets: caption corpora and the Debian sound-effects corpus builder."""
