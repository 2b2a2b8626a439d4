//! alertmanager: written next.
