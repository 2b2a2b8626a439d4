//! pagerduty: written next.
