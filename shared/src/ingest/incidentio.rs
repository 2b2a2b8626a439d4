//! incidentio: written next.
