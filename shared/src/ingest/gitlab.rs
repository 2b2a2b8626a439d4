//! gitlab: written next.
