//! Config validation: one fixture per bad case, each with the exact message it must give.
