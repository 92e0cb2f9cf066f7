use hds_fhir_model::{ElementShape, r4};

fn shape(parent: &str, name: &str) -> Option<ElementShape> {
    r4().element_shape(parent, name)
}

#[test]
fn shapes_follow_resources_backbones_and_datatypes() {
    let repeating = Some(ElementShape {
        repeats: true,
        choice: false,
    });
    let single = Some(ElementShape {
        repeats: false,
        choice: false,
    });
    assert_eq!(shape("Patient", "name"), repeating);
    assert_eq!(shape("Patient", "birthDate"), single);
    assert_eq!(shape("Patient.name", "given"), repeating);
    assert_eq!(
        shape("Patient.contact", "name"),
        single,
        "contact.name is one HumanName"
    );
    assert_eq!(shape("Patient.contact.name", "given"), repeating);
    assert_eq!(
        shape("Observation", "value"),
        Some(ElementShape {
            repeats: false,
            choice: true
        })
    );
    assert_eq!(
        shape("Observation", "valueQuantity"),
        Some(ElementShape {
            repeats: false,
            choice: true
        })
    );
    assert_eq!(shape("Observation.valueQuantity", "unit"), single);
    assert_eq!(
        shape("Questionnaire.item.item", "linkId"),
        single,
        "through a contentReference"
    );
    assert_eq!(shape("Patient", "nonsense"), None);
    assert_eq!(shape("Nonsense", "id"), None);
    assert_eq!(
        shape("Bundle.entry.resource", "id"),
        None,
        "below a resource-typed element"
    );
}
