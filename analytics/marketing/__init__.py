"""Marketing spend and what it bought: ``spend`` reads the spend CSV that
``refract spend import`` takes and keeps it in Redis; ``roi`` sets it beside the attribution
engine's credit, per channel and month (cost per conversion, ROI, ROAS). docs/marketing.md is
the reference.
"""
