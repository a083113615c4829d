//! Writing bags (docs/BAGS.md).
