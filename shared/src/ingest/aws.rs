//! aws: written next.
