"""XMP packets as XML: read and update the caption's properties, keeping everything else.

Used for XMP sidecar files (``xmp_sidecar``), where another tool's data (darktable's edit
history) must survive an update in meaning. The properties: ``dc:description`` and
``Iptc4xmpCore:AltTextAccessibility`` (``rdf:Alt``, ``x-default``) and ``dc:subject`` (the
keywords, an ``rdf:Bag``). A packet with a DTD, or one that does not parse, is not read.
"""

from __future__ import annotations

import re
from typing import Sequence
from xml.dom import minidom
from xml.parsers.expat import ExpatError

NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_XMLNS = "http://www.w3.org/2000/xmlns/"


# --- text ----------------------------------------------------------------------

# XML 1.0 forbids these, and a NUL would end the EXIF ASCII string early.
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str) -> str:
    return _INVALID_XML_CHARS.sub("", text)


# --- XMP -----------------------------------------------------------------------

_FRESH_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="imgcap-desktop">'
    f'<rdf:RDF xmlns:rdf="{NS_RDF}"><rdf:Description rdf:about=""/></rdf:RDF>'
    "</x:xmpmeta>"
)

_OUR_PROPERTIES = ((NS_DC, "description"), (NS_IPTC_CORE, "AltTextAccessibility"))
# IPTC Core's "Keywords" is dc:subject in XMP: an unordered rdf:Bag of one keyword per rdf:li.
_SUBJECT = (NS_DC, "subject")


def parse_packet(packet: bytes | None) -> minidom.Document | None:
    if not packet:
        return None
    packet = packet.rstrip(b"\x00 \t\r\n")
    # A DTD in a photo is never legitimate XMP; refusing it rules out entity tricks.
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return None
    try:
        doc = minidom.parseString(packet)
    except (ExpatError, ValueError, UnicodeError, LookupError):  # LookupError: <?xml encoding="UTF-0"?>
        return None
    if not doc.getElementsByTagNameNS(NS_RDF, "RDF"):
        return None
    return doc


def _elements(node):
    return [c for c in node.childNodes if c.nodeType == c.ELEMENT_NODE]


def _qname(prefix: str | None, local: str) -> str:
    return f"{prefix}:{local}" if prefix else local


def _prefix_for(doc: minidom.Document, element, uri: str, wanted: str) -> str:
    """A prefix bound to ``uri`` at ``element``, declaring one there if needed."""
    node = element
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        for attr in node.attributes.values():
            if attr.prefix == "xmlns" and attr.value == uri:
                # Usable only if nothing nearer rebinds it.
                if _lookup(element, attr.localName) == uri:
                    return attr.localName
        node = node.parentNode
    # Pick a prefix that is free here, so no existing property changes meaning.
    prefix, n = wanted, 1
    while _lookup(element, prefix) is not None:
        prefix, n = f"{wanted}{n}", n + 1
    element.setAttributeNS(NS_XMLNS, f"xmlns:{prefix}", uri)
    return prefix


def _lookup(element, prefix: str) -> str | None:
    node = element
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        if node.hasAttribute(f"xmlns:{prefix}"):
            return node.getAttribute(f"xmlns:{prefix}")
        node = node.parentNode
    return None


def updated(packet: bytes | None, text: str, keywords: Sequence[str] | None = None) -> str:
    """The XMP packet with our two properties set to ``text`` (and dc:subject to ``keywords``
    unless None), everything else kept."""
    doc = parse_packet(packet) or minidom.parseString(_FRESH_XMP)
    rdf = doc.getElementsByTagNameNS(NS_RDF, "RDF")[0]
    rdf_prefix = rdf.prefix
    descriptions = [e for e in _elements(rdf) if (e.namespaceURI, e.localName) == (NS_RDF, "Description")]
    replaced = _OUR_PROPERTIES + ((_SUBJECT,) if keywords is not None else ())
    for d in descriptions:
        for attr in list(d.attributes.values()):
            if (attr.namespaceURI, attr.localName) in replaced:
                d.removeAttributeNode(attr)
        for child in _elements(d):
            if (child.namespaceURI, child.localName) in replaced:
                d.removeChild(child)
    if descriptions:
        target = descriptions[0]
    else:
        target = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "Description"))
        target.setAttributeNS(NS_RDF, _qname(rdf_prefix, "about"), "")
        rdf.appendChild(target)

    value = clean_text(text)
    for uri, local, wanted in (
        (NS_DC, "description", "dc"),
        (NS_IPTC_CORE, "AltTextAccessibility", "Iptc4xmpCore"),
    ):
        prefix = _prefix_for(doc, target, uri, wanted)
        prop = doc.createElementNS(uri, _qname(prefix, local))
        alt = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "Alt"))
        li = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "li"))
        li.setAttributeNS(NS_XML, "xml:lang", "x-default")
        li.appendChild(doc.createTextNode(value))
        alt.appendChild(li)
        prop.appendChild(alt)
        target.appendChild(prop)
    words = [w for w in (clean_text(" ".join(k.split())) for k in keywords or ()) if w]
    if words:
        prop = doc.createElementNS(NS_DC, _qname(_prefix_for(doc, target, NS_DC, "dc"), "subject"))
        bag = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "Bag"))
        for word in words:
            li = doc.createElementNS(NS_RDF, _qname(rdf_prefix, "li"))
            li.appendChild(doc.createTextNode(word))
            bag.appendChild(li)
        prop.appendChild(bag)
        target.appendChild(prop)

    return doc.documentElement.toxml()


def _alt_text(prop) -> str | None:
    lis = prop.getElementsByTagNameNS(NS_RDF, "li")
    if not lis:
        return "".join(n.data for n in prop.childNodes if n.nodeType == n.TEXT_NODE).strip() or None
    chosen = next((li for li in lis if li.getAttributeNS(NS_XML, "lang") == "x-default"), lis[0])
    return "".join(n.data for n in chosen.childNodes if n.nodeType in (n.TEXT_NODE, n.CDATA_SECTION_NODE))


def descriptions(packet: bytes | None) -> tuple[str | None, str | None]:
    doc = parse_packet(packet)
    if doc is None:
        return None, None
    found: dict[tuple[str, str], str | None] = {}
    for d in doc.getElementsByTagNameNS(NS_RDF, "Description"):
        for attr in d.attributes.values():
            key = (attr.namespaceURI, attr.localName)
            if key in _OUR_PROPERTIES:
                found.setdefault(key, attr.value)
        for child in _elements(d):
            key = (child.namespaceURI, child.localName)
            if key in _OUR_PROPERTIES:
                found.setdefault(key, _alt_text(child))
    return found.get(_OUR_PROPERTIES[0]), found.get(_OUR_PROPERTIES[1])


def subject(packet: bytes | None) -> tuple[str, ...]:
    doc = parse_packet(packet)
    if doc is None:
        return ()
    words: list[str] = []
    for d in doc.getElementsByTagNameNS(NS_RDF, "Description"):
        for child in _elements(d):
            if (child.namespaceURI, child.localName) == _SUBJECT:
                for li in child.getElementsByTagNameNS(NS_RDF, "li"):
                    word = "".join(n.data for n in li.childNodes
                                   if n.nodeType in (n.TEXT_NODE, n.CDATA_SECTION_NODE)).strip()
                    if word and word not in words:
                        words.append(word)
    return tuple(words)


