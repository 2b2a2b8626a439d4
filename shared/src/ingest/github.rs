//! github: written next.
