"""A real, small PDF 1.4 that names the contract: written by hand, no PDF library.

One page, Helvetica, a few lines of text; the cross-reference table carries the exact
byte offset of every object so strict readers accept it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.sandbox.contracts import Contract


def _escape(text: str) -> str:
    ascii_text = text.encode("latin-1", "replace").decode("latin-1")
    return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def render_pdf(lines: list[str]) -> bytes:
    """A one-page PDF showing ``lines`` top to bottom."""
    text = ["BT", "/F1 12 Tf", "14 TL", "72 740 Td"]
    for line in lines:
        text.append(f"({_escape(line)}) Tj T*")
    text.append("ET")
    stream = "\n".join(text).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def contract_pdf(contract: Contract) -> bytes:
    """The executed copy of ``contract``."""
    executed = contract.executed.isoformat() if contract.executed else "not executed"
    lines = [
        f"{contract.contract_name}",
        f"SpotDraft contract {contract.id} (reference {contract.reference_id})",
        f"Template {contract.template.id}: {contract.template.name}",
        f"Counterparty: {contract.counter_party_name}",
        f"External id: {contract.external_metadata.get('id', '-')}",
        f"Executed: {executed}",
        "",
    ]
    lines += [f"{key}: {value}" for key, value in sorted(contract.contract_data.items())]
    lines += ["", "Signed by:"]
    lines += [f"  {s.name} <{s.email}>" for s in contract.signatories]
    lines += ["", "Produced by the spotsync SpotDraft sandbox."]
    return render_pdf(lines)
