//! Reading bags into episodes (docs/BAGS.md, "Reading and bad logs").
