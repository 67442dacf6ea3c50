//! ServiceNow's encoded queries (`docs/servicenow.md` §3.2), the subset connapp
//! and the DEX chain use: `^` AND, `^OR` OR, `^NQ` new query, `=`, `!=`,
//! `LIKE`, `NOT LIKE`, `STARTSWITH`, `ENDSWITH`, `IN`, `ISEMPTY`,
//! `ISNOTEMPTY`, `<`, `<=`, `>`, `>=`, `ORDERBY`/`ORDERBYDESC`, and one level
//! of dot-walk. As on a real instance, a part naming an unknown field or
//! operator is **silently ignored** — the query then matches more rows.

/// One condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Field, possibly `ref.field`.
    pub field: String,
    /// Operator.
    pub op: Op,
    /// Value (raw).
    pub value: String,
}

/// Operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `LIKE` (contains)
    Like,
    /// `NOT LIKE`
    NotLike,
    /// `STARTSWITH`
    Starts,
    /// `ENDSWITH`
    Ends,
    /// `IN a,b`
    In,
    /// `ISEMPTY`
    Empty,
    /// `ISNOTEMPTY`
    NotEmpty,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A parsed query: OR-groups (from `^NQ`) of AND-ed clauses, each clause a
/// list of OR-ed conditions; plus the ordering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// `groups[g][c]` = the alternatives of clause `c` in group `g`.
    pub groups: Vec<Vec<Vec<Cond>>>,
    /// `(field, descending)`.
    pub order: Vec<(String, bool)>,
}

const OPS: &[(&str, Op)] = &[
    ("NOT LIKE", Op::NotLike),
    ("ISNOTEMPTY", Op::NotEmpty),
    ("ISEMPTY", Op::Empty),
    ("STARTSWITH", Op::Starts),
    ("ENDSWITH", Op::Ends),
    ("LIKE", Op::Like),
    ("IN", Op::In),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("=", Op::Eq),
    ("<", Op::Lt),
    (">", Op::Gt),
];

fn parse_cond(part: &str, known: &dyn Fn(&str) -> bool) -> Option<Cond> {
    // The field is the leading run of name characters (column names are lower
    // case; operators are upper case or symbols).
    let end = part
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(part.len());
    let (field, rest) = part.split_at(end);
    if field.is_empty() || !known(field) {
        return None;
    }
    let (op, value) = OPS.iter().find_map(|(t, op)| rest.strip_prefix(t).map(|v| (*op, v)))?;
    if matches!(op, Op::Empty | Op::NotEmpty) && !value.is_empty() {
        return None;
    }
    Some(Cond {
        field: field.to_string(),
        op,
        value: value.to_string(),
    })
}

/// Parses `q`; `known` says whether a (possibly dot-walked) field exists.
pub fn parse(q: &str, known: &dyn Fn(&str) -> bool) -> Query {
    let mut out = Query::default();
    for group in q.split("^NQ") {
        let mut clauses: Vec<Vec<Cond>> = Vec::new();
        for part in group.split('^') {
            if part.is_empty() {
                continue;
            }
            if let Some(f) = part.strip_prefix("ORDERBYDESC") {
                if known(f) {
                    out.order.push((f.to_string(), true));
                }
                continue;
            }
            if let Some(f) = part.strip_prefix("ORDERBY") {
                if known(f) {
                    out.order.push((f.to_string(), false));
                }
                continue;
            }
            if let Some(alt) = part.strip_prefix("OR") {
                // `^OR` joins the previous clause; an invalid alternative is ignored.
                if let (Some(c), Some(last)) = (parse_cond(alt, known), clauses.last_mut()) {
                    last.push(c);
                }
                continue;
            }
            if let Some(c) = parse_cond(part, known) {
                clauses.push(vec![c]);
            }
        }
        out.groups.push(clauses);
    }
    out
}

impl Cond {
    /// Whether a field value satisfies the condition.
    pub fn holds(&self, actual: &str) -> bool {
        let v = self.value.as_str();
        match self.op {
            Op::Eq => actual == v,
            Op::Ne => actual != v,
            Op::Like => actual.contains(v),
            Op::NotLike => !actual.contains(v),
            Op::Starts => actual.starts_with(v),
            Op::Ends => actual.ends_with(v),
            Op::In => v.split(',').any(|x| x == actual),
            Op::Empty => actual.is_empty(),
            Op::NotEmpty => !actual.is_empty(),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let ord = match (actual.parse::<f64>(), v.parse::<f64>()) {
                    (Ok(a), Ok(b)) => a.partial_cmp(&b),
                    _ => Some(actual.cmp(v)),
                };
                match (self.op, ord) {
                    (Op::Lt, Some(o)) => o.is_lt(),
                    (Op::Le, Some(o)) => o.is_le(),
                    (Op::Gt, Some(o)) => o.is_gt(),
                    (Op::Ge, Some(o)) => o.is_ge(),
                    _ => false,
                }
            }
        }
    }
}

impl Query {
    /// Whether a row matches; `get` reads a (possibly dot-walked) field.
    pub fn matches(&self, get: &dyn Fn(&str) -> String) -> bool {
        self.groups.is_empty()
            || self
                .groups
                .iter()
                .any(|clauses| clauses.iter().all(|alts| alts.iter().any(|c| c.holds(&get(&c.field)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(f: &str) -> bool {
        ["name", "active", "id", "connection_alias.id", "sys_created_on"].contains(&f)
    }

    #[test]
    fn operators_and_or() {
        let q = parse("nameLIKEzoom^ORidLIKEzoom^active=true", &known);
        assert_eq!(q.groups[0].len(), 2);
        assert_eq!(q.groups[0][0].len(), 2);
        let row = |name: &'static str, id: &'static str, active: &'static str| {
            move |f: &str| match f {
                "name" => name.to_string(),
                "id" => id.to_string(),
                "active" => active.to_string(),
                _ => String::new(),
            }
        };
        assert!(q.matches(&row("DEX for zoom", "x", "true")));
        assert!(q.matches(&row("x", "sn_zoom_spoke.Zoomzoom", "true")));
        assert!(!q.matches(&row("x", "y", "true")));
        assert!(!q.matches(&row("zoom", "y", "false")));
    }

    #[test]
    fn invalid_parts_are_silently_ignored() {
        // `nmae` is not a field: the query degrades to `active=true`.
        let q = parse("nmae=DEX^active=true", &known);
        assert_eq!(q.groups[0].len(), 1);
        assert_eq!(q.groups[0][0][0].field, "active");
        // An unknown operator too.
        assert!(parse("nameSOUNDSLIKEx", &known).groups[0].is_empty());
    }

    #[test]
    fn new_query_order_and_in() {
        let q = parse("name=a^NQname=b^ORDERBYDESCsys_created_on", &known);
        assert_eq!(q.groups.len(), 2);
        assert_eq!(q.order, vec![("sys_created_on".to_string(), true)]);
        let c = parse("nameINa,b,c", &known).groups[0][0][0].clone();
        assert!(c.holds("b") && !c.holds("d"));
        assert!(parse("nameISEMPTY", &known).groups[0][0][0].holds(""));
        assert!(parse("connection_alias.id=x", &known).groups[0][0][0].holds("x"));
    }
}
