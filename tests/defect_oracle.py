"""The expected findings of every synthetic defect: the oracle of ``test_defects.py``.

``EXPECTED[name]`` is exactly the set of check ids that applying defect ``name`` to a clean
tiny tree makes fire (new findings against the clean tree, judged as ``Defect.profile``,
``.deep``, ``.manifest`` and ``.archive`` say). It is a superset of the defect's
``targets`` (what it is built to demonstrate): the rest fire as consequences (a deleted
slice also shortens the case's slice count). Kept here, in the tests, so that the product
never states what its own checks must find.
"""

from __future__ import annotations

EXPECTED: dict[str, frozenset[str]] = {
    "age-months": frozenset({"demographics.age_format"}),
    "archive-comment": frozenset({"archive.md5"}),
    "archive-truncated": frozenset(
        {
            "archive.md5",
            "archive.unreadable",
            "counts.class",
            "labels.file.missing",
            "structure.case_dir.missing",
            "structure.class_dir.missing",
            "structure.no_dataset",
        }
    ),
    "archive-zip-slip": frozenset(
        {
            "archive.md5",
            "archive.unsafe_member",
        }
    ),
    "big-endian": frozenset({"dicom.transfer_syntax"}),
    "case-dir-duplicate": frozenset(
        {
            "counts.class",
            "dicom.uid.duplicate",
            "labels.index.diagnosis_mismatch",
            "structure.case_dir.duplicate",
            "structure.case_dir.name",
        }
    ),
    "case-dir-empty": frozenset(
        {
            "counts.case_slices",
            "structure.case_dir.empty",
        }
    ),
    "case-dir-missing": frozenset(
        {
            "counts.class",
            "structure.case_dir.missing",
        }
    ),
    "case-dir-name": frozenset(
        {
            "labels.index.case_missing",
            "structure.case_dir.missing",
            "structure.case_dir.name",
        }
    ),
    "case-dir-unexpected": frozenset(
        {
            "counts.class",
            "structure.case_dir.unexpected",
        }
    ),
    "class-dir-alias": frozenset({"structure.class_dir.alias"}),
    "class-dir-duplicate": frozenset(
        {
            "counts.class",
            "dicom.uid.duplicate",
            "structure.case_dir.duplicate",
            "structure.class_dir.alias",
            "structure.class_dir.duplicate",
        }
    ),
    "class-dir-missing": frozenset(
        {
            "counts.class",
            "structure.case_dir.missing",
            "structure.class_dir.missing",
        }
    ),
    "deflated": frozenset({"dicom.transfer_syntax"}),
    "deid-age-malformed": frozenset(
        {
            "deid.kept_attribute.missing",
            "demographics.age_format",
        }
    ),
    "deid-birth-date": frozenset({"deid.attribute.present"}),
    "deid-empty-removed": frozenset({"deid.attribute.empty"}),
    "deid-filename": frozenset(
        {
            "deid.attribute.present",
            "deid.filename",
            "deid.patient_id",
            "structure.file.name_order",
        }
    ),
    "deid-identity-flag": frozenset({"deid.patient_identity_removed"}),
    "deid-institution": frozenset({"deid.attribute.present"}),
    "deid-nested-uid": frozenset(
        {
            "deid.attribute.present",
            "deid.uid.not_remapped",
        }
    ),
    "deid-patient-id": frozenset(
        {
            "deid.attribute.present",
            "deid.patient_id",
        }
    ),
    "deid-patient-name": frozenset({"deid.attribute.present"}),
    "deid-private-block": frozenset({"deid.private_tags"}),
    "deid-sex-missing": frozenset(
        {
            "deid.kept_attribute.missing",
            "dicom.required_attribute",
        }
    ),
    "demographics-age": frozenset({"demographics.age"}),
    "demographics-inconsistent": frozenset({"demographics.inconsistent"}),
    "demographics-sex": frozenset({"demographics.sex"}),
    "empty-file": frozenset(
        {
            "dicom.unreadable",
            "geometry.instance_number",
            "geometry.spacing.missing_slice",
        }
    ),
    "file-extension": frozenset({"structure.file.extension"}),
    "file-meta-incomplete": frozenset({"dicom.file_meta"}),
    "fixity-extra": frozenset(
        {
            "integrity.extra_file",
            "structure.stray_file",
        }
    ),
    "fixity-flip": frozenset({"integrity.checksum"}),
    "fixity-link": frozenset(
        {
            "integrity.extra_file",
            "integrity.manifest",
            "integrity.missing_file",
            "structure.stray_file",
        }
    ),
    "fixity-missing": frozenset(
        {
            "counts.case_slices",
            "integrity.missing_file",
        }
    ),
    "fixity-truncated": frozenset(
        {
            "dicom.unreadable",
            "integrity.size",
        }
    ),
    "gantry-tilt": frozenset({"geometry.instance_number"}),
    "index-bad-id": frozenset({"labels.index.schema"}),
    "index-diagnosis": frozenset(
        {
            "counts.labelled",
            "labels.index.case_missing",
            "labels.index.diagnosis_mismatch",
            "labels.index.schema",
        }
    ),
    "index-gap": frozenset(
        {
            "labels.index.gap",
            "labels.index.out_of_range",
        }
    ),
    "index-header": frozenset({"labels.index.schema"}),
    "index-ragged": frozenset(
        {
            "counts.labelled",
            "labels.index.case_missing",
            "labels.index.gap",
            "labels.index.schema",
        }
    ),
    "index-relative-path": frozenset({"labels.index.relative_path"}),
    "instance-number-gap": frozenset({"geometry.instance_number"}),
    "instance-order": frozenset({"geometry.slice_location.non_monotonic"}),
    "labels-capacity": frozenset({"labels.capacity"}),
    "labels-dtype": frozenset({"labels.dtype"}),
    "labels-lobe-mismatch": frozenset({"labels.lobe_slice.mismatch"}),
    "labels-missing": frozenset({"labels.file.missing"}),
    "labels-not-npy": frozenset({"labels.file.unreadable"}),
    "labels-padding": frozenset({"labels.padding"}),
    "labels-pickled": frozenset({"labels.file.unreadable"}),
    "labels-reversed": frozenset({"labels.orientation"}),
    "labels-shape": frozenset({"labels.shape"}),
    "labels-total": frozenset(
        {
            "labels.total",
            "labels.version_diff",
        }
    ),
    "labels-truncated": frozenset({"labels.file.unreadable"}),
    "labels-unannounced-change": frozenset({"labels.version_diff"}),
    "labels-values": frozenset({"labels.values"}),
    "media-uid-mismatch": frozenset({"dicom.file_meta"}),
    "meta-group-length": frozenset({"dicom.file_meta"}),
    "missing-slice": frozenset(
        {
            "counts.case_slices",
            "geometry.instance_number",
            "geometry.spacing.missing_slice",
        }
    ),
    "name-order": frozenset({"structure.file.name_order"}),
    "nested-type1-empty": frozenset({"dicom.required_attribute"}),
    "no-case-folders": frozenset(
        {
            "counts.class",
            "labels.index.case_missing",
            "structure.case_dir.missing",
            "structure.no_dataset",
            "structure.stray_file",
        }
    ),
    "not-dicom": frozenset(
        {
            "dicom.unreadable",
            "geometry.instance_number",
            "geometry.spacing.missing_slice",
        }
    ),
    "orientation-tilt": frozenset({"geometry.orientation.inconsistent"}),
    "pixel-out-of-range": frozenset({"integrity.pixel.range"}),
    "pixel-short": frozenset({"integrity.pixel.decode"}),
    "pixel-spacing": frozenset({"geometry.shape.inconsistent"}),
    "rescale-implausible": frozenset({"integrity.pixel.range"}),
    "series-multiple": frozenset({"geometry.series.multiple"}),
    "slice-location-duplicate": frozenset(
        {
            "geometry.position.mismatch",
            "geometry.slice_location.duplicate",
        }
    ),
    "slice-location-missing": frozenset(
        {
            "dicom.required_attribute",
            "geometry.slice_location.missing",
        }
    ),
    "slice-location-shift": frozenset({"geometry.position.mismatch"}),
    "sop-class": frozenset({"dicom.sop_class"}),
    "sop-uid-empty": frozenset(
        {
            "dicom.file_meta",
            "dicom.required_attribute",
            "dicom.uid.duplicate",
        }
    ),
    "stray-file": frozenset({"structure.stray_file"}),
    "symlink-inside": frozenset({"structure.stray_file"}),
    "symlink-loop": frozenset({"structure.symlink_loop"}),
    "symlink-outside": frozenset(
        {
            "counts.case_slices",
            "geometry.instance_number",
            "geometry.spacing.missing_slice",
            "structure.symlink_outside",
        }
    ),
    "truncated-file": frozenset({"dicom.unreadable"}),
    "truncated-header": frozenset(
        {
            "dicom.unreadable",
            "geometry.instance_number",
            "geometry.spacing.missing_slice",
        }
    ),
    "type1-missing": frozenset({"dicom.required_attribute"}),
    "type2-missing": frozenset({"dicom.required_attribute"}),
    "uid-duplicate-sop": frozenset({"dicom.uid.duplicate"}),
    "uid-duplicate-study": frozenset({"dicom.uid.duplicate"}),
    "uid-invalid-nested": frozenset({"dicom.uid.invalid"}),
    "uneven-spacing": frozenset({"geometry.spacing.irregular"}),
    "vr-mismatch": frozenset({"dicom.parser_warning"}),
    "zero-filled": frozenset({"dicom.unreadable"}),
}
