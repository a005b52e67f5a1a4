"""Facts about backbones, apart from any method: what each architecture calls its layers
(:mod:`.layouts`), what one model holds (:mod:`.facts`), loading it safely (:mod:`.loading`), and decoder
attention (:mod:`.decoders`). Each method resolves its own targets from these facts
(``peftner/methods/<name>.py``)."""
