//! Risk scoring of a change.
//!
//! Score = impact points (tier, data, availability, compliance, privileged access, cryptographic keys)
//! × the complexity percentage / 100, rounded half up, + failure-history points (the share of similar
//! changes that failed over the rules' period, scaled to `failure_rate_points`) + incident-history points
//! (change-related incidents and problems opened on the affected services over the same period, capped at
//! `max_incident_points`). Every contribution is
//! listed as a [`RiskFactor`]; the factors always sum exactly to the score. Rules are per tenant and come
//! from its catalog; every field is optional and defaults to the values documented on [`RiskRules`].
//! Arithmetic saturates, so absurd configured values give an absurd score, never a panic.

use serde::{Deserialize, Serialize};

use super::validation::FieldError;

/// Largest value any points rule may have.
pub const MAX_POINTS: i64 = 1000;
/// Smallest complexity percentage: complexity never reduces the impact.
pub const MIN_COMPLEXITY_PERCENT: i64 = 100;
/// Largest complexity percentage.
pub const MAX_COMPLEXITY_PERCENT: i64 = 1000;
/// Longest history period, in months.
pub const MAX_PERIOD_MONTHS: u8 = 12;

/// What the change does to data, from least to most severe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataImpact {
    #[default]
    None,
    Read,
    Write,
    /// Deletes or irreversibly rewrites data.
    Destructive,
}

impl DataImpact {
    pub const ALL: [DataImpact; 4] = [DataImpact::None, DataImpact::Read, DataImpact::Write, DataImpact::Destructive];

    pub fn as_str(self) -> &'static str {
        match self {
            DataImpact::None => "none",
            DataImpact::Read => "read",
            DataImpact::Write => "write",
            DataImpact::Destructive => "destructive",
        }
    }
}

/// What the change does to service availability, from least to most severe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityImpact {
    #[default]
    None,
    Degraded,
    Outage,
}

impl AvailabilityImpact {
    pub const ALL: [AvailabilityImpact; 3] =
        [AvailabilityImpact::None, AvailabilityImpact::Degraded, AvailabilityImpact::Outage];

    pub fn as_str(self) -> &'static str {
        match self {
            AvailabilityImpact::None => "none",
            AvailabilityImpact::Degraded => "degraded",
            AvailabilityImpact::Outage => "outage",
        }
    }
}

/// The change's declared impact. Every field is optional; unknown fields are refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impact {
    #[serde(default)]
    pub data: DataImpact,
    #[serde(default)]
    pub availability: AvailabilityImpact,
    /// Touches compliance-relevant controls or data.
    #[serde(default)]
    pub compliance: bool,
}

/// How hard the change is to implement, from least to most complex.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    Low,
    #[default]
    Medium,
    High,
}

impl Complexity {
    pub const ALL: [Complexity; 3] = [Complexity::Low, Complexity::Medium, Complexity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Complexity::Low => "low",
            Complexity::Medium => "medium",
            Complexity::High => "high",
        }
    }
}

/// Risk level of a score; ordered, so `level >= RiskLevel::High` works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskLevel {
    pub const ALL: [RiskLevel; 4] = [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Critical => "critical",
        }
    }

    /// The highest level whose threshold the score reaches (`score >= threshold`), else `Low`.
    pub fn from_score(score: i64, thresholds: &Thresholds) -> RiskLevel {
        if score >= thresholds.critical {
            RiskLevel::Critical
        } else if score >= thresholds.high {
            RiskLevel::High
        } else if score >= thresholds.medium {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        }
    }
}

/// Similar changes (same service, category and type) over the rules' period, summed over all affected
/// services. `failures` above `changes` is treated as `changes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct History {
    pub changes: u64,
    pub failures: u64,
}

/// Incidents on the affected services over the rules' period, summed over them: all incidents,
/// the change-related ones among them, and the problems their recurrence opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IncidentHistory {
    pub incidents: u64,
    pub change_related: u64,
    pub problems: u64,
}

/// What [`assess`] scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RiskInput<'a> {
    /// Tier of the most critical affected service: 1 = most critical .. 4 = least; clamped into 1..=4.
    /// See [`RiskRules::effective_tier`] for services missing from the catalog.
    pub tier: u8,
    pub impact: &'a Impact,
    pub complexity: Complexity,
    pub privileged_access: bool,
    pub cryptographic_keys: bool,
    pub history: History,
    pub incidents: IncidentHistory,
}

/// One contribution to a score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFactor {
    /// Stable code: one of the `RiskFactor::*` constants.
    pub factor: String,
    /// Human explanation, e.g. "tier 1 service".
    pub detail: String,
    pub points: i64,
}

impl RiskFactor {
    pub const TIER: &'static str = "tier";
    pub const DATA_IMPACT: &'static str = "data_impact";
    pub const AVAILABILITY_IMPACT: &'static str = "availability_impact";
    pub const COMPLIANCE: &'static str = "compliance";
    pub const PRIVILEGED_ACCESS: &'static str = "privileged_access";
    pub const CRYPTOGRAPHIC_KEYS: &'static str = "cryptographic_keys";
    pub const COMPLEXITY: &'static str = "complexity";
    pub const FAILURE_HISTORY: &'static str = "failure_history";
    pub const INCIDENT_HISTORY: &'static str = "incident_history";
}

/// A scored change: the factors sum exactly to `score`, and `level` follows from the thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAssessment {
    pub score: i64,
    pub level: RiskLevel,
    pub factors: Vec<RiskFactor>,
}

/// Points per data impact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataPoints {
    pub none: i64,
    pub read: i64,
    pub write: i64,
    pub destructive: i64,
}

impl Default for DataPoints {
    fn default() -> Self {
        Self { none: 0, read: 1, write: 3, destructive: 6 }
    }
}

impl DataPoints {
    pub fn get(&self, data: DataImpact) -> i64 {
        match data {
            DataImpact::None => self.none,
            DataImpact::Read => self.read,
            DataImpact::Write => self.write,
            DataImpact::Destructive => self.destructive,
        }
    }
}

/// Points per availability impact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvailabilityPoints {
    pub none: i64,
    pub degraded: i64,
    pub outage: i64,
}

impl Default for AvailabilityPoints {
    fn default() -> Self {
        Self { none: 0, degraded: 2, outage: 5 }
    }
}

impl AvailabilityPoints {
    pub fn get(&self, availability: AvailabilityImpact) -> i64 {
        match availability {
            AvailabilityImpact::None => self.none,
            AvailabilityImpact::Degraded => self.degraded,
            AvailabilityImpact::Outage => self.outage,
        }
    }
}

/// Percentage the impact points are multiplied by, per complexity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplexityPercent {
    pub low: i64,
    pub medium: i64,
    pub high: i64,
}

impl Default for ComplexityPercent {
    fn default() -> Self {
        Self { low: 100, medium: 150, high: 200 }
    }
}

impl ComplexityPercent {
    pub fn get(&self, complexity: Complexity) -> i64 {
        match complexity {
            Complexity::Low => self.low,
            Complexity::Medium => self.medium,
            Complexity::High => self.high,
        }
    }
}

/// Lowest score of each level above `low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub medium: i64,
    pub high: i64,
    pub critical: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { medium: 10, high: 20, critical: 30 }
    }
}

/// A tenant's scoring rules, read from its catalog. Every field is optional, with the defaults shown;
/// unknown fields are refused. Check with [`RiskRules::validate`] when loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskRules {
    /// Points for tiers 1..4 (8, 5, 3, 1).
    pub tier_points: [i64; 4],
    /// Points per data impact (0, 1, 3, 6).
    pub data_points: DataPoints,
    /// Points per availability impact (0, 2, 5).
    pub availability_points: AvailabilityPoints,
    /// Points for a compliance-relevant change (4).
    pub compliance_points: i64,
    /// Points for a change using privileged access (4).
    pub privileged_access_points: i64,
    /// Points for a change touching cryptographic keys (4).
    pub cryptographic_keys_points: i64,
    /// Impact multiplier per complexity, in percent (100, 150, 200).
    pub complexity_percent: ComplexityPercent,
    /// Points at a 100% failure rate, scaled linearly (20).
    pub failure_rate_points: i64,
    /// Fewer similar changes than this and history is not counted (3).
    pub min_history: u64,
    /// Months of history the caller reads counters for, 1..=12 (3).
    pub period_months: u8,
    /// Points per change-related incident on the affected services over the period (2).
    pub change_related_incident_points: i64,
    /// Points per problem opened on the affected services over the period (5).
    pub problem_points: i64,
    /// Most points the incident history adds (10).
    pub max_incident_points: i64,
    /// Lowest score of medium, high and critical (10, 20, 30).
    pub thresholds: Thresholds,
    /// Tier of a service missing from the catalog (1).
    pub unknown_service_tier: u8,
}

impl Default for RiskRules {
    fn default() -> Self {
        Self {
            tier_points: [8, 5, 3, 1],
            data_points: DataPoints::default(),
            availability_points: AvailabilityPoints::default(),
            compliance_points: 4,
            privileged_access_points: 4,
            cryptographic_keys_points: 4,
            complexity_percent: ComplexityPercent::default(),
            failure_rate_points: 20,
            min_history: 3,
            period_months: 3,
            change_related_incident_points: 2,
            problem_points: 5,
            max_incident_points: 10,
            thresholds: Thresholds::default(),
            unknown_service_tier: 1,
        }
    }
}

impl RiskRules {
    /// Checks ranges and ordering, naming the first bad field by its JSON path. Besides the ranges,
    /// points must not fall as the impact worsens (nor rise as the tier number rises), so that a worse
    /// change never scores lower.
    pub fn validate(&self) -> Result<(), FieldError> {
        let [t1, t2, t3, t4] = self.tier_points;
        let tiers = [("tier_points[0]", t1), ("tier_points[1]", t2), ("tier_points[2]", t3), ("tier_points[3]", t4)];
        let d = &self.data_points;
        let data = [
            ("data_points.none", d.none),
            ("data_points.read", d.read),
            ("data_points.write", d.write),
            ("data_points.destructive", d.destructive),
        ];
        let a = &self.availability_points;
        let availability = [
            ("availability_points.none", a.none),
            ("availability_points.degraded", a.degraded),
            ("availability_points.outage", a.outage),
        ];
        let singles = [
            ("compliance_points", self.compliance_points),
            ("privileged_access_points", self.privileged_access_points),
            ("cryptographic_keys_points", self.cryptographic_keys_points),
            ("failure_rate_points", self.failure_rate_points),
            ("change_related_incident_points", self.change_related_incident_points),
            ("problem_points", self.problem_points),
            ("max_incident_points", self.max_incident_points),
        ];
        for (field, value) in tiers.iter().chain(&data).chain(&availability).chain(&singles) {
            in_range(field, *value, 0, MAX_POINTS)?;
        }
        let c = &self.complexity_percent;
        let complexity = [
            ("complexity_percent.low", c.low),
            ("complexity_percent.medium", c.medium),
            ("complexity_percent.high", c.high),
        ];
        for (field, value) in &complexity {
            in_range(field, *value, MIN_COMPLEXITY_PERCENT, MAX_COMPLEXITY_PERCENT)?;
        }
        let [tier_1, tier_2, tier_3, tier_4] = tiers;
        non_decreasing(&[tier_4, tier_3, tier_2, tier_1], "a more critical tier may not score fewer points")?;
        non_decreasing(&data, "a worse data impact may not score fewer points")?;
        non_decreasing(&availability, "a worse availability impact may not score fewer points")?;
        non_decreasing(&complexity, "a higher complexity may not have a lower percentage")?;
        if !(1..=MAX_PERIOD_MONTHS).contains(&self.period_months) {
            return Err(FieldError::new(
                "period_months",
                format!("period_months must be between 1 and {MAX_PERIOD_MONTHS}"),
            ));
        }
        let t = &self.thresholds;
        if t.medium <= 0 {
            return Err(FieldError::new("thresholds.medium", "thresholds.medium must be greater than 0"));
        }
        if t.high <= t.medium {
            return Err(FieldError::new(
                "thresholds.high",
                format!("thresholds.high must be greater than thresholds.medium ({})", t.medium),
            ));
        }
        if t.critical <= t.high {
            return Err(FieldError::new(
                "thresholds.critical",
                format!("thresholds.critical must be greater than thresholds.high ({})", t.high),
            ));
        }
        if !(1..=4).contains(&self.unknown_service_tier) {
            return Err(FieldError::new("unknown_service_tier", "unknown_service_tier must be between 1 and 4"));
        }
        Ok(())
    }

    /// The tier to score: the most critical (lowest-numbered) of the affected services' tiers, `None`
    /// standing for a service missing from the catalog, which counts as `unknown_service_tier`. No
    /// services at all also counts as unknown. The result is in 1..=4.
    pub fn effective_tier(&self, tiers: impl IntoIterator<Item = Option<u8>>) -> u8 {
        let unknown = clamp_tier(self.unknown_service_tier);
        tiers.into_iter().map(|t| t.map_or(unknown, clamp_tier)).min().unwrap_or(unknown)
    }

    /// Points for a tier, clamped into 1..=4.
    pub fn points_for_tier(&self, tier: u8) -> i64 {
        let [t1, t2, t3, t4] = self.tier_points;
        match clamp_tier(tier) {
            1 => t1,
            2 => t2,
            3 => t3,
            _ => t4,
        }
    }
}

fn in_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), FieldError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("{field} must be between {min} and {max}")))
    }
}

/// Blames the first field that is below the one before it.
fn non_decreasing(fields: &[(&str, i64)], why: &str) -> Result<(), FieldError> {
    for pair in fields.windows(2) {
        if let [(prev_field, prev), (field, value)] = pair
            && value < prev
        {
            return Err(FieldError::new(*field, format!("{field} must be at least {prev_field} ({prev}): {why}")));
        }
    }
    Ok(())
}

fn clamp_tier(tier: u8) -> u8 {
    tier.clamp(1, 4)
}

/// Scores a change under `rules`. Never panics, whatever the rules; with rules that pass
/// [`RiskRules::validate`], a worse input never scores lower.
pub fn assess(rules: &RiskRules, input: &RiskInput) -> RiskAssessment {
    let mut ledger = Ledger::default();
    let tier = clamp_tier(input.tier);
    ledger.add(RiskFactor::TIER, format!("tier {tier} service"), rules.points_for_tier(tier), true);

    let data = input.impact.data;
    let data_detail = match data {
        DataImpact::None => "does not touch data",
        DataImpact::Read => "reads data",
        DataImpact::Write => "writes data",
        DataImpact::Destructive => "deletes or irreversibly rewrites data",
    };
    ledger.add(RiskFactor::DATA_IMPACT, data_detail.to_owned(), rules.data_points.get(data), false);

    let availability = input.impact.availability;
    let availability_detail = match availability {
        AvailabilityImpact::None => "no availability impact",
        AvailabilityImpact::Degraded => "degrades availability",
        AvailabilityImpact::Outage => "causes an outage",
    };
    let availability_points = rules.availability_points.get(availability);
    ledger.add(RiskFactor::AVAILABILITY_IMPACT, availability_detail.to_owned(), availability_points, false);

    if input.impact.compliance {
        let detail = "touches compliance-relevant controls or data".to_owned();
        ledger.add(RiskFactor::COMPLIANCE, detail, rules.compliance_points, false);
    }
    if input.privileged_access {
        let detail = "uses privileged access".to_owned();
        ledger.add(RiskFactor::PRIVILEGED_ACCESS, detail, rules.privileged_access_points, false);
    }
    if input.cryptographic_keys {
        let detail = "touches cryptographic keys".to_owned();
        ledger.add(RiskFactor::CRYPTOGRAPHIC_KEYS, detail, rules.cryptographic_keys_points, false);
    }

    let impact = ledger.total;
    let percent = rules.complexity_percent.get(input.complexity);
    let scaled = saturate(div_round_half_up(i128::from(impact).saturating_mul(i128::from(percent)), 100));
    let detail = format!("complexity {} multiplies impact by {}", input.complexity.as_str(), multiplier(percent));
    ledger.add(RiskFactor::COMPLEXITY, detail, scaled.saturating_sub(impact), true);

    let (points, detail) = history_factor(rules, input.history);
    ledger.add(RiskFactor::FAILURE_HISTORY, detail, points, true);

    let (points, detail) = incident_factor(rules, input.incidents);
    ledger.add(RiskFactor::INCIDENT_HISTORY, detail, points, true);

    let score = ledger.total;
    RiskAssessment { score, level: RiskLevel::from_score(score, &rules.thresholds), factors: ledger.factors }
}

/// Running total and the factors that made it. Each factor records what was actually added, so the
/// factors sum to the total even when the addition saturates.
#[derive(Default)]
struct Ledger {
    total: i64,
    factors: Vec<RiskFactor>,
}

impl Ledger {
    fn add(&mut self, factor: &str, detail: String, points: i64, keep_zero: bool) {
        let before = self.total;
        self.total = before.saturating_add(points);
        // Between 0 and `points`, so it cannot overflow.
        let added = self.total.saturating_sub(before);
        if added != 0 || keep_zero {
            self.factors.push(RiskFactor { factor: factor.to_owned(), detail, points: added });
        }
    }
}

/// "in the last month", "in the last 3 months".
fn within(rules: &RiskRules) -> String {
    match rules.period_months {
        1 => "in the last month".to_owned(),
        n => format!("in the last {n} months"),
    }
}

/// `n` and its noun, singular or plural: "1 problem", "2 problems".
fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn incident_factor(rules: &RiskRules, h: IncidentHistory) -> (i64, String) {
    let within = within(rules);
    if h.incidents == 0 && h.problems == 0 {
        return (0, format!("no incidents on the affected services {within}"));
    }
    let related = h.change_related;
    let points = i128::from(rules.change_related_incident_points)
        .saturating_mul(i128::from(related))
        .saturating_add(i128::from(rules.problem_points).saturating_mul(i128::from(h.problems)));
    let cap = i128::from(rules.max_incident_points);
    let capped = if points > cap { format!(", capped at {}", rules.max_incident_points) } else { String::new() };
    let detail = format!(
        "{} ({related} change-related) and {} on the affected services {within}{capped}",
        count(h.incidents, "incident"),
        count(h.problems, "problem"),
    );
    (saturate(points.min(cap)), detail)
}

fn history_factor(rules: &RiskRules, history: History) -> (i64, String) {
    let within = within(rules);
    let changes = history.changes;
    if changes == 0 {
        return (0, format!("no similar changes {within}: history not counted"));
    }
    let noun = if changes == 1 { "change" } else { "changes" };
    if changes < rules.min_history {
        let min = rules.min_history;
        return (
            0,
            format!("only {changes} similar {noun} {within}, fewer than the {min} needed: history not counted"),
        );
    }
    let failures = history.failures.min(changes);
    let scaled = i128::from(rules.failure_rate_points).saturating_mul(i128::from(failures));
    let points = saturate(div_round_half_up(scaled, changes));
    let percent = div_round_half_up(i128::from(failures).saturating_mul(100), changes);
    let percent = match percent {
        0 if failures > 0 => "<1%".to_owned(),
        100 if failures < changes => ">99%".to_owned(),
        p => format!("{p}%"),
    };
    (points, format!("{failures} of {changes} similar {noun} failed {within} ({percent})"))
}

/// `n / d` rounded half up (towards +∞ on a tie); 0 when `d` is 0.
fn div_round_half_up(n: i128, d: u64) -> i128 {
    let d = i128::from(d);
    if d == 0 {
        return 0;
    }
    let (q, r) = (n.div_euclid(d), n.rem_euclid(d));
    if r.saturating_mul(2) >= d { q.saturating_add(1) } else { q }
}

fn saturate(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// A percentage as a multiplier: 200 → "2.0", 150 → "1.5", 125 → "1.25".
fn multiplier(percent: i64) -> String {
    let sign = if percent < 0 { "-" } else { "" };
    let (whole, frac) = (percent.unsigned_abs() / 100, percent.unsigned_abs() % 100);
    if frac % 10 == 0 { format!("{sign}{whole}.{}", frac / 10) } else { format!("{sign}{whole}.{frac:02}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// An owned [`RiskInput`], since the input borrows its impact.
    #[derive(Debug, Clone, Copy, Default)]
    struct Case {
        tier: u8,
        impact: Impact,
        complexity: Complexity,
        privileged_access: bool,
        cryptographic_keys: bool,
        history: History,
        incidents: IncidentHistory,
    }

    impl Case {
        fn input(&self) -> RiskInput<'_> {
            RiskInput {
                tier: self.tier,
                impact: &self.impact,
                complexity: self.complexity,
                privileged_access: self.privileged_access,
                cryptographic_keys: self.cryptographic_keys,
                history: self.history,
                incidents: self.incidents,
            }
        }

        fn assess(&self, rules: &RiskRules) -> RiskAssessment {
            assess(rules, &self.input())
        }
    }

    fn impact(data: DataImpact, availability: AvailabilityImpact, compliance: bool) -> Impact {
        Impact { data, availability, compliance }
    }

    fn history(changes: u64, failures: u64) -> History {
        History { changes, failures }
    }

    fn summary(a: &RiskAssessment) -> Vec<(&str, i64)> {
        a.factors.iter().map(|f| (f.factor.as_str(), f.points)).collect()
    }

    fn factor<'a>(a: &'a RiskAssessment, code: &str) -> &'a RiskFactor {
        a.factors.iter().find(|f| f.factor == code).expect("factor present")
    }

    fn sum(a: &RiskAssessment) -> i128 {
        a.factors.iter().map(|f| i128::from(f.points)).sum()
    }

    #[test]
    fn tier_1_write_outage_high_complexity_with_2_of_8_failures_scores_37_critical() {
        // impact: tier 1 (8) + write (3) + outage (5) = 16; high complexity ×200% = 32 (+16);
        // history: round(20 × 2 / 8) = 5; score 37 >= 30 → critical.
        let case = Case {
            tier: 1,
            impact: impact(DataImpact::Write, AvailabilityImpact::Outage, false),
            complexity: Complexity::High,
            history: history(8, 2),
            ..Case::default()
        };
        let a = case.assess(&RiskRules::default());
        assert_eq!(a.score, 37);
        assert_eq!(a.level, RiskLevel::Critical);
        assert_eq!(
            summary(&a),
            [
                ("tier", 8),
                ("data_impact", 3),
                ("availability_impact", 5),
                ("complexity", 16),
                ("failure_history", 5),
                ("incident_history", 0)
            ]
        );
        assert_eq!(factor(&a, "tier").detail, "tier 1 service");
        assert_eq!(factor(&a, "complexity").detail, "complexity high multiplies impact by 2.0");
        assert_eq!(factor(&a, "failure_history").detail, "2 of 8 similar changes failed in the last 3 months (25%)");
    }

    #[test]
    fn tier_3_read_degraded_compliance_medium_complexity_scores_15_medium() {
        // impact: tier 3 (3) + read (1) + degraded (2) + compliance (4) = 10; medium ×150% = 15 (+5);
        // history: 2 similar changes < min_history 3 → 0; score 15: medium (10..20).
        let case = Case {
            tier: 3,
            impact: impact(DataImpact::Read, AvailabilityImpact::Degraded, true),
            complexity: Complexity::Medium,
            history: history(2, 2),
            ..Case::default()
        };
        let a = case.assess(&RiskRules::default());
        assert_eq!(a.score, 15);
        assert_eq!(a.level, RiskLevel::Medium);
        assert_eq!(
            summary(&a),
            [
                ("tier", 3),
                ("data_impact", 1),
                ("availability_impact", 2),
                ("compliance", 4),
                ("complexity", 5),
                ("failure_history", 0),
                ("incident_history", 0)
            ]
        );
        assert_eq!(factor(&a, "complexity").detail, "complexity medium multiplies impact by 1.5");
    }

    #[test]
    fn tier_2_destructive_privileged_keys_low_complexity_with_1_of_3_failures_scores_26_high() {
        // impact: tier 2 (5) + destructive (6) + privileged (4) + keys (4) = 19; low ×100% = 19 (+0);
        // history: round(20 × 1 / 3) = round(6.67) = 7; score 26: high (20..30).
        let case = Case {
            tier: 2,
            impact: impact(DataImpact::Destructive, AvailabilityImpact::None, false),
            complexity: Complexity::Low,
            privileged_access: true,
            cryptographic_keys: true,
            history: history(3, 1),
            incidents: IncidentHistory::default(),
        };
        let a = case.assess(&RiskRules::default());
        assert_eq!(a.score, 26);
        assert_eq!(a.level, RiskLevel::High);
        assert_eq!(
            summary(&a),
            [
                ("tier", 5),
                ("data_impact", 6),
                ("privileged_access", 4),
                ("cryptographic_keys", 4),
                ("complexity", 0),
                ("failure_history", 7),
                ("incident_history", 0)
            ]
        );
        assert_eq!(factor(&a, "complexity").detail, "complexity low multiplies impact by 1.0");
        assert_eq!(factor(&a, "failure_history").detail, "1 of 3 similar changes failed in the last 3 months (33%)");
    }

    #[test]
    fn complexity_and_history_round_half_up() {
        // tier 4 (1) × 150% = 1.5 → 2 (+1); history round(20 × 1 / 8) = round(2.5) = 3; score 5: low.
        let case = Case { tier: 4, history: history(8, 1), ..Case::default() };
        let a = case.assess(&RiskRules::default());
        assert_eq!(summary(&a), [("tier", 1), ("complexity", 1), ("failure_history", 3), ("incident_history", 0)]);
        assert_eq!(a.score, 5);
        assert_eq!(a.level, RiskLevel::Low);
    }

    #[test]
    fn zero_point_impact_factors_are_omitted_but_tier_complexity_and_both_histories_always_appear() {
        let rules = RiskRules { tier_points: [0, 0, 0, 0], ..RiskRules::default() };
        let a = Case { tier: 2, ..Case::default() }.assess(&rules);
        assert_eq!(summary(&a), [("tier", 0), ("complexity", 0), ("failure_history", 0), ("incident_history", 0)]);
        assert_eq!(a.score, 0);
        assert_eq!(a.level, RiskLevel::Low);
    }

    #[test]
    fn history_below_min_history_contributes_zero_and_says_why() {
        let rules = RiskRules::default();
        let a = Case { tier: 4, history: history(2, 2), ..Case::default() }.assess(&rules);
        let f = factor(&a, "failure_history");
        assert_eq!(f.points, 0);
        assert_eq!(
            f.detail,
            "only 2 similar changes in the last 3 months, fewer than the 3 needed: history not counted"
        );

        let one_month = RiskRules { period_months: 1, ..RiskRules::default() };
        let a = Case { tier: 4, history: history(1, 1), ..Case::default() }.assess(&one_month);
        assert_eq!(
            factor(&a, "failure_history").detail,
            "only 1 similar change in the last month, fewer than the 3 needed: history not counted"
        );

        let a = Case { tier: 4, history: history(0, 5), ..Case::default() }.assess(&rules);
        let f = factor(&a, "failure_history");
        assert_eq!((f.points, f.detail.as_str()), (0, "no similar changes in the last 3 months: history not counted"));
    }

    #[test]
    fn history_at_min_history_is_counted() {
        let a = Case { tier: 4, history: history(3, 3), ..Case::default() }.assess(&RiskRules::default());
        let f = factor(&a, "failure_history");
        assert_eq!(f.points, 20);
        assert_eq!(f.detail, "3 of 3 similar changes failed in the last 3 months (100%)");
    }

    #[test]
    fn failures_above_changes_count_as_a_100_percent_failure_rate() {
        let a = Case { tier: 4, history: history(4, 9), ..Case::default() }.assess(&RiskRules::default());
        let f = factor(&a, "failure_history");
        assert_eq!(f.points, 20);
        assert_eq!(f.detail, "4 of 4 similar changes failed in the last 3 months (100%)");
    }

    #[test]
    fn tiny_and_near_total_failure_rates_are_not_shown_as_0_or_100_percent() {
        let rules = RiskRules::default();
        let a = Case { tier: 4, history: history(1000, 1), ..Case::default() }.assess(&rules);
        assert_eq!(factor(&a, "failure_history").detail, "1 of 1000 similar changes failed in the last 3 months (<1%)");
        let a = Case { tier: 4, history: history(1000, 999), ..Case::default() }.assess(&rules);
        assert_eq!(
            factor(&a, "failure_history").detail,
            "999 of 1000 similar changes failed in the last 3 months (>99%)"
        );
    }

    #[test]
    fn tier_outside_1_to_4_is_clamped() {
        let rules = RiskRules::default();
        let zero = Case { tier: 0, complexity: Complexity::Low, ..Case::default() }.assess(&rules);
        assert_eq!((zero.score, factor(&zero, "tier").detail.as_str()), (8, "tier 1 service"));
        let nine = Case { tier: 9, complexity: Complexity::Low, ..Case::default() }.assess(&rules);
        assert_eq!((nine.score, factor(&nine, "tier").detail.as_str()), (1, "tier 4 service"));
    }

    #[test]
    fn effective_tier_is_the_most_critical_with_unknown_services_at_the_unknown_tier() {
        let rules = RiskRules { unknown_service_tier: 2, ..RiskRules::default() };
        assert_eq!(rules.effective_tier([Some(3), Some(4)]), 3);
        assert_eq!(rules.effective_tier([Some(3), None]), 2);
        assert_eq!(rules.effective_tier([Some(1), None]), 1);
        assert_eq!(rules.effective_tier([]), 2);
        assert_eq!(rules.effective_tier([Some(0), Some(7)]), 1);
        assert_eq!(RiskRules::default().effective_tier([Some(4), None]), 1);
    }

    #[test]
    fn multiplier_text_drops_needless_digits() {
        assert_eq!(multiplier(100), "1.0");
        assert_eq!(multiplier(150), "1.5");
        assert_eq!(multiplier(125), "1.25");
        assert_eq!(multiplier(105), "1.05");
        assert_eq!(multiplier(1000), "10.0");
        assert_eq!(multiplier(-250), "-2.5");
    }

    #[test]
    fn level_is_the_highest_threshold_reached() {
        let t = Thresholds::default();
        let cases = [(i64::MIN, "low"), (9, "low"), (10, "medium"), (19, "medium"), (20, "high"), (30, "critical")];
        for (score, level) in cases {
            assert_eq!(RiskLevel::from_score(score, &t).as_str(), level, "{score}");
        }
        assert!(RiskLevel::Critical > RiskLevel::High && RiskLevel::High > RiskLevel::Medium);
        assert!(RiskLevel::Medium > RiskLevel::Low);
    }

    #[test]
    fn default_rules_serialize_to_the_documented_json() {
        let expected = json!({
            "tier_points": [8, 5, 3, 1],
            "data_points": {"none": 0, "read": 1, "write": 3, "destructive": 6},
            "availability_points": {"none": 0, "degraded": 2, "outage": 5},
            "compliance_points": 4,
            "privileged_access_points": 4,
            "cryptographic_keys_points": 4,
            "complexity_percent": {"low": 100, "medium": 150, "high": 200},
            "failure_rate_points": 20,
            "min_history": 3,
            "period_months": 3,
            "change_related_incident_points": 2,
            "problem_points": 5,
            "max_incident_points": 10,
            "thresholds": {"medium": 10, "high": 20, "critical": 30},
            "unknown_service_tier": 1
        });
        assert_eq!(serde_json::to_value(RiskRules::default()).expect("json"), expected);
        let back: RiskRules = serde_json::from_value(expected).expect("parse");
        assert_eq!(back, RiskRules::default());
        let empty: RiskRules = serde_json::from_value(json!({})).expect("parse");
        assert_eq!(empty, RiskRules::default());
        assert_eq!(RiskRules::default().validate(), Ok(()));
    }

    #[test]
    fn partial_rules_deserialize_with_defaults() {
        let rules: RiskRules = serde_json::from_value(json!({
            "thresholds": {"high": 25},
            "data_points": {"destructive": 10},
            "complexity_percent": {"high": 300},
            "period_months": 6
        }))
        .expect("parse");
        let expected = RiskRules {
            thresholds: Thresholds { medium: 10, high: 25, critical: 30 },
            data_points: DataPoints { none: 0, read: 1, write: 3, destructive: 10 },
            complexity_percent: ComplexityPercent { low: 100, medium: 150, high: 300 },
            period_months: 6,
            ..RiskRules::default()
        };
        assert_eq!(rules, expected);
        assert_eq!(rules.validate(), Ok(()));
    }

    #[test]
    fn unknown_rules_fields_are_refused_at_any_depth() {
        for bad in [
            json!({"tier_point": [8, 5, 3, 1]}),
            json!({"thresholds": {"hgih": 25}}),
            json!({"data_points": {"delete": 9}}),
            json!({"availability_points": {"down": 9}}),
            json!({"complexity_percent": {"extreme": 900}}),
        ] {
            let err = serde_json::from_value::<RiskRules>(bad.clone()).expect_err("unknown field");
            assert!(err.to_string().contains("unknown field"), "{bad}: {err}");
        }
        assert!(serde_json::from_value::<RiskRules>(json!({"tier_points": [8, 5, 3]})).is_err());
    }

    #[test]
    fn impact_deserializes_with_defaults_and_refuses_unknown_fields() {
        let i: Impact = serde_json::from_value(json!({"availability": "outage"})).expect("parse");
        assert_eq!(i, Impact { data: DataImpact::None, availability: AvailabilityImpact::Outage, compliance: false });
        assert_eq!(serde_json::from_value::<Impact>(json!({})).expect("parse"), Impact::default());
        assert!(serde_json::from_value::<Impact>(json!({"data": "write", "pii": true})).is_err());
        assert!(serde_json::from_value::<Impact>(json!({"data": "Write"})).is_err());
    }

    #[test]
    fn enums_serialize_as_their_snake_case_names() {
        fn check<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: T, name: &str) {
            assert_eq!(serde_json::to_value(&value).expect("json"), json!(name));
            assert_eq!(serde_json::from_value::<T>(json!(name)).expect("parse"), value);
        }
        DataImpact::ALL.into_iter().for_each(|v| check(v, v.as_str()));
        AvailabilityImpact::ALL.into_iter().for_each(|v| check(v, v.as_str()));
        Complexity::ALL.into_iter().for_each(|v| check(v, v.as_str()));
        RiskLevel::ALL.into_iter().for_each(|v| check(v, v.as_str()));
        assert_eq!(Complexity::default(), Complexity::Medium);
    }

    #[test]
    fn assessment_serializes_to_snake_case_json() {
        let case =
            Case { tier: 2, impact: impact(DataImpact::Write, AvailabilityImpact::None, false), ..Case::default() };
        let a = case.assess(&RiskRules::default());
        let expected = json!({
            "score": 12,
            "level": "medium",
            "factors": [
                {"factor": "tier", "detail": "tier 2 service", "points": 5},
                {"factor": "data_impact", "detail": "writes data", "points": 3},
                {"factor": "complexity", "detail": "complexity medium multiplies impact by 1.5", "points": 4},
                {
                    "factor": "failure_history",
                    "detail": "no similar changes in the last 3 months: history not counted",
                    "points": 0
                },
                {
                    "factor": "incident_history",
                    "detail": "no incidents on the affected services in the last 3 months",
                    "points": 0
                }
            ]
        });
        assert_eq!(serde_json::to_value(&a).expect("json"), expected);
        assert_eq!(serde_json::from_value::<RiskAssessment>(expected).expect("parse"), a);
    }

    #[test]
    fn incident_history_scores_change_related_incidents_and_problems_capped_and_says_so() {
        let rules = RiskRules::default();
        let quiet = Case::default().assess(&rules);
        assert_eq!(factor(&quiet, "incident_history").points, 0);
        let some =
            Case { incidents: IncidentHistory { incidents: 3, change_related: 2, problems: 0 }, ..Case::default() }
                .assess(&rules);
        let f = factor(&some, "incident_history");
        assert_eq!(f.points, 4);
        assert_eq!(
            f.detail,
            "3 incidents (2 change-related) and 0 problems on the affected services in the last 3 months"
        );
        let many =
            Case { incidents: IncidentHistory { incidents: 9, change_related: 4, problems: 1 }, ..Case::default() }
                .assess(&rules);
        let f = factor(&many, "incident_history");
        assert_eq!(f.points, 10);
        assert_eq!(
            f.detail,
            "9 incidents (4 change-related) and 1 problem on the affected services in the last 3 months, capped at 10"
        );
        assert_eq!(sum(&many), i128::from(many.score));
    }

    #[test]
    fn validate_names_each_bad_field() {
        let d = RiskRules::default;
        let cases: Vec<(RiskRules, &str)> = vec![
            (RiskRules { tier_points: [1001, 5, 3, 1], ..d() }, "tier_points[0]"),
            (RiskRules { tier_points: [8, 5, 3, -1], ..d() }, "tier_points[3]"),
            (RiskRules { tier_points: [8, 9, 3, 1], ..d() }, "tier_points[0]"),
            (RiskRules { tier_points: [8, 5, 3, 4], ..d() }, "tier_points[2]"),
            (RiskRules { data_points: DataPoints { read: -1, ..DataPoints::default() }, ..d() }, "data_points.read"),
            (RiskRules { data_points: DataPoints { write: 0, ..DataPoints::default() }, ..d() }, "data_points.write"),
            (
                RiskRules { data_points: DataPoints { destructive: 1001, ..DataPoints::default() }, ..d() },
                "data_points.destructive",
            ),
            (
                RiskRules {
                    availability_points: AvailabilityPoints { outage: 1, ..AvailabilityPoints::default() },
                    ..d()
                },
                "availability_points.outage",
            ),
            (
                RiskRules {
                    availability_points: AvailabilityPoints { none: -3, ..AvailabilityPoints::default() },
                    ..d()
                },
                "availability_points.none",
            ),
            (RiskRules { compliance_points: -1, ..d() }, "compliance_points"),
            (RiskRules { privileged_access_points: 1001, ..d() }, "privileged_access_points"),
            (RiskRules { cryptographic_keys_points: i64::MIN, ..d() }, "cryptographic_keys_points"),
            (RiskRules { failure_rate_points: 5000, ..d() }, "failure_rate_points"),
            (RiskRules { problem_points: -1, ..d() }, "problem_points"),
            (RiskRules { max_incident_points: 1001, ..d() }, "max_incident_points"),
            (
                RiskRules { complexity_percent: ComplexityPercent { low: 99, ..ComplexityPercent::default() }, ..d() },
                "complexity_percent.low",
            ),
            (
                RiskRules {
                    complexity_percent: ComplexityPercent { high: 1001, ..ComplexityPercent::default() },
                    ..d()
                },
                "complexity_percent.high",
            ),
            (
                RiskRules {
                    complexity_percent: ComplexityPercent { high: 120, ..ComplexityPercent::default() },
                    ..d()
                },
                "complexity_percent.high",
            ),
            (RiskRules { period_months: 0, ..d() }, "period_months"),
            (RiskRules { period_months: 13, ..d() }, "period_months"),
            (RiskRules { thresholds: Thresholds { medium: 0, ..Thresholds::default() }, ..d() }, "thresholds.medium"),
            (RiskRules { thresholds: Thresholds { high: 10, ..Thresholds::default() }, ..d() }, "thresholds.high"),
            (RiskRules { thresholds: Thresholds { high: 35, ..Thresholds::default() }, ..d() }, "thresholds.critical"),
            (
                RiskRules { thresholds: Thresholds { critical: 20, ..Thresholds::default() }, ..d() },
                "thresholds.critical",
            ),
            (RiskRules { unknown_service_tier: 0, ..d() }, "unknown_service_tier"),
            (RiskRules { unknown_service_tier: 5, ..d() }, "unknown_service_tier"),
        ];
        for (rules, field) in cases {
            let err = rules.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.starts_with(field), "{err}");
        }
        let err = RiskRules { thresholds: Thresholds { high: 10, ..Thresholds::default() }, ..d() }
            .validate()
            .expect_err("invalid");
        assert_eq!(err.to_string(), "thresholds.high: thresholds.high must be greater than thresholds.medium (10)");
    }

    #[test]
    fn absurd_rules_and_history_do_not_overflow() {
        let huge = RiskRules {
            tier_points: [i64::MAX; 4],
            data_points: DataPoints { none: i64::MAX, read: i64::MAX, write: i64::MAX, destructive: i64::MAX },
            availability_points: AvailabilityPoints { none: i64::MAX, degraded: i64::MAX, outage: i64::MAX },
            compliance_points: i64::MAX,
            privileged_access_points: i64::MAX,
            cryptographic_keys_points: i64::MAX,
            complexity_percent: ComplexityPercent { low: i64::MAX, medium: i64::MAX, high: i64::MAX },
            failure_rate_points: i64::MAX,
            min_history: 0,
            period_months: u8::MAX,
            change_related_incident_points: i64::MAX,
            problem_points: i64::MAX,
            max_incident_points: i64::MAX,
            thresholds: Thresholds { medium: i64::MAX, high: i64::MIN, critical: 0 },
            unknown_service_tier: u8::MAX,
        };
        let case = Case {
            tier: 1,
            impact: impact(DataImpact::Destructive, AvailabilityImpact::Outage, true),
            complexity: Complexity::High,
            privileged_access: true,
            cryptographic_keys: true,
            history: history(u64::MAX, u64::MAX),
            incidents: IncidentHistory { incidents: u64::MAX, change_related: u64::MAX, problems: u64::MAX },
        };
        let a = case.assess(&huge);
        assert_eq!(a.score, i64::MAX);
        assert_eq!(sum(&a), i128::from(a.score));
        let negative = RiskRules {
            tier_points: [i64::MIN; 4],
            complexity_percent: ComplexityPercent { low: i64::MIN, medium: i64::MIN, high: i64::MIN },
            failure_rate_points: i64::MIN,
            ..huge
        };
        let a = case.assess(&negative);
        assert_eq!(sum(&a), i128::from(a.score));
    }

    fn sorted<const N: usize>(mut values: [i64; N]) -> [i64; N] {
        values.sort_unstable();
        values
    }

    /// Any rules that pass `validate`.
    fn valid_rules() -> impl Strategy<Value = RiskRules> {
        let points = || 0..=MAX_POINTS;
        (
            proptest::array::uniform4(points()).prop_map(|t| {
                let [a, b, c, d] = sorted(t);
                [d, c, b, a]
            }),
            proptest::array::uniform4(points()).prop_map(sorted),
            proptest::array::uniform3(points()).prop_map(sorted),
            (points(), points(), points(), points()),
            proptest::array::uniform3(MIN_COMPLEXITY_PERCENT..=MAX_COMPLEXITY_PERCENT).prop_map(sorted),
            prop_oneof![0..=20u64, any::<u64>()],
            1..=MAX_PERIOD_MONTHS,
            (1..=10_000i64, 1..=10_000i64, 1..=10_000i64),
            (1..=4u8, proptest::array::uniform3(points())),
        )
            .prop_map(
                |(
                    tiers,
                    [dn, dr, dw, dd],
                    [an, ad, ao],
                    (cp, pp, kp, fp),
                    [cl, cm, ch],
                    mh,
                    pm,
                    (t1, t2, t3),
                    (ut, [ip, pr, mi]),
                )| {
                    RiskRules {
                        tier_points: tiers,
                        data_points: DataPoints { none: dn, read: dr, write: dw, destructive: dd },
                        availability_points: AvailabilityPoints { none: an, degraded: ad, outage: ao },
                        compliance_points: cp,
                        privileged_access_points: pp,
                        cryptographic_keys_points: kp,
                        complexity_percent: ComplexityPercent { low: cl, medium: cm, high: ch },
                        failure_rate_points: fp,
                        min_history: mh,
                        period_months: pm,
                        change_related_incident_points: ip,
                        problem_points: pr,
                        max_incident_points: mi,
                        thresholds: Thresholds { medium: t1, high: t1 + t2, critical: t1 + t2 + t3 },
                        unknown_service_tier: ut,
                    }
                },
            )
    }

    /// Any rules at all, valid or not.
    fn any_rules() -> impl Strategy<Value = RiskRules> {
        (
            any::<[i64; 4]>(),
            any::<[i64; 4]>(),
            any::<[i64; 3]>(),
            any::<[i64; 4]>(),
            any::<[i64; 3]>(),
            any::<u64>(),
            any::<u8>(),
            any::<[i64; 3]>(),
            (any::<u8>(), any::<[i64; 3]>()),
        )
            .prop_map(
                |(
                    tiers,
                    [dn, dr, dw, dd],
                    [an, ad, ao],
                    [cp, pp, kp, fp],
                    [cl, cm, ch],
                    mh,
                    pm,
                    [t1, t2, t3],
                    (ut, [ip, pr, mi]),
                )| {
                    RiskRules {
                        tier_points: tiers,
                        data_points: DataPoints { none: dn, read: dr, write: dw, destructive: dd },
                        availability_points: AvailabilityPoints { none: an, degraded: ad, outage: ao },
                        compliance_points: cp,
                        privileged_access_points: pp,
                        cryptographic_keys_points: kp,
                        complexity_percent: ComplexityPercent { low: cl, medium: cm, high: ch },
                        failure_rate_points: fp,
                        min_history: mh,
                        period_months: pm,
                        change_related_incident_points: ip,
                        problem_points: pr,
                        max_incident_points: mi,
                        thresholds: Thresholds { medium: t1, high: t2, critical: t3 },
                        unknown_service_tier: ut,
                    }
                },
            )
    }

    fn any_history() -> impl Strategy<Value = History> {
        prop_oneof![(0..50u64, 0..50u64), (any::<u64>(), any::<u64>()), (any::<u64>(), Just(u64::MAX))]
            .prop_map(|(changes, failures)| History { changes, failures })
    }

    fn any_incidents() -> impl Strategy<Value = IncidentHistory> {
        prop_oneof![(0..20u64, 0..20u64, 0..5u64), (any::<u64>(), any::<u64>(), any::<u64>())]
            .prop_map(|(incidents, change_related, problems)| IncidentHistory { incidents, change_related, problems })
    }

    fn any_case() -> impl Strategy<Value = Case> {
        (
            any::<u8>(),
            proptest::sample::select(DataImpact::ALL.to_vec()),
            proptest::sample::select(AvailabilityImpact::ALL.to_vec()),
            any::<bool>(),
            proptest::sample::select(Complexity::ALL.to_vec()),
            any::<bool>(),
            any::<bool>(),
            any_history(),
            any_incidents(),
        )
            .prop_map(
                |(
                    tier,
                    data,
                    availability,
                    compliance,
                    complexity,
                    privileged_access,
                    cryptographic_keys,
                    history,
                    incidents,
                )| {
                    Case {
                        tier,
                        impact: Impact { data, availability, compliance },
                        complexity,
                        privileged_access,
                        cryptographic_keys,
                        history,
                        incidents,
                    }
                },
            )
    }

    /// `base` with one input moved towards `other` when that is worse, one variant per input.
    fn worsenings(base: &Case, other: &Case) -> Vec<(&'static str, Case)> {
        let b = *base;
        let mut worse_history = b.history;
        worse_history.failures = b.history.failures.max(other.history.failures);
        vec![
            ("tier", Case { tier: b.tier.min(other.tier), ..b }),
            ("data", Case { impact: Impact { data: b.impact.data.max(other.impact.data), ..b.impact }, ..b }),
            (
                "availability",
                Case {
                    impact: Impact { availability: b.impact.availability.max(other.impact.availability), ..b.impact },
                    ..b
                },
            ),
            ("compliance", Case { impact: Impact { compliance: true, ..b.impact }, ..b }),
            ("privileged_access", Case { privileged_access: true, ..b }),
            ("cryptographic_keys", Case { cryptographic_keys: true, ..b }),
            ("complexity", Case { complexity: b.complexity.max(other.complexity), ..b }),
            ("failures", Case { history: worse_history, ..b }),
            (
                "incidents",
                Case {
                    incidents: IncidentHistory {
                        incidents: b.incidents.incidents.max(other.incidents.incidents),
                        change_related: b.incidents.change_related.max(other.incidents.change_related),
                        problems: b.incidents.problems.max(other.incidents.problems),
                    },
                    ..b
                },
            ),
        ]
    }

    proptest! {
        #[test]
        fn factors_always_sum_to_the_score(rules in valid_rules(), case in any_case()) {
            prop_assert_eq!(rules.validate(), Ok(()));
            let a = case.assess(&rules);
            prop_assert_eq!(sum(&a), i128::from(a.score));
            prop_assert_eq!(&a.factors[0].factor, "tier");
            let codes: Vec<&str> = a.factors.iter().map(|f| f.factor.as_str()).collect();
            prop_assert_eq!(&codes[codes.len() - 3..], ["complexity", "failure_history", "incident_history"]);
        }

        #[test]
        fn score_never_falls_when_a_single_input_worsens(
            rules in valid_rules(),
            base in any_case(),
            other in any_case(),
        ) {
            let before = base.assess(&rules).score;
            for (input, worse) in worsenings(&base, &other) {
                let after = worse.assess(&rules).score;
                prop_assert!(after >= before, "{}: {} -> {} ({:?} -> {:?})", input, before, after, base, worse);
            }
        }

        #[test]
        fn level_is_consistent_with_the_thresholds(rules in valid_rules(), case in any_case()) {
            let a = case.assess(&rules);
            let t = &rules.thresholds;
            prop_assert_eq!(a.level, RiskLevel::from_score(a.score, t));
            prop_assert_eq!(a.level >= RiskLevel::Medium, a.score >= t.medium);
            prop_assert_eq!(a.level >= RiskLevel::High, a.score >= t.high);
            prop_assert_eq!(a.level == RiskLevel::Critical, a.score >= t.critical);
        }

        #[test]
        fn any_rules_and_history_never_panic_and_factors_still_sum(rules in any_rules(), case in any_case()) {
            let a = case.assess(&rules);
            prop_assert_eq!(sum(&a), i128::from(a.score));
            prop_assert_eq!(a.level, RiskLevel::from_score(a.score, &rules.thresholds));
        }
    }
}
