//! auth: written next.
