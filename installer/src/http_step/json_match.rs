//! Whether an API's answer holds what was sent or expected: every key of the wanted JSON is in
//! the answer with a matching value (servers add defaults and metadata), arrays match item by
//! item, numbers by value (`30` is `30.0`).

use serde_json::Value;

pub fn holds(answer: &Value, wanted: &Value) -> bool {
    match (answer, wanted) {
        (Value::Object(a), Value::Object(w)) => w.iter().all(|(k, v)| a.get(k).is_some_and(|av| holds(av, v))),
        (Value::Array(a), Value::Array(w)) => a.len() == w.len() && a.iter().zip(w).all(|(a, w)| holds(a, w)),
        (Value::Number(a), Value::Number(w)) => a.as_f64() == w.as_f64(),
        (a, w) => a == w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_keys_of_the_answer_are_fine_and_differences_are_not() {
        let answer = json!({"version": 3, "policy": {"phases": {"delete": {"min_age": "30d", "actions": {"delete": {"delete_searchable_snapshot": true}}}}}});
        assert!(holds(
            &answer,
            &json!({"policy": {"phases": {"delete": {"min_age": "30d", "actions": {"delete": {}}}}}})
        ));
        assert!(!holds(&answer, &json!({"policy": {"phases": {"delete": {"min_age": "14d"}}}})));
        assert!(!holds(&answer, &json!({"policy": {"phases": {"hot": {}}}})));
        assert!(holds(&json!([1.0, {"a": 1, "b": 2}]), &json!([1, {"a": 1}])));
        assert!(!holds(&json!([1, 2]), &json!([1])));
    }
}
