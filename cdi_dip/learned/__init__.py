"""The learned initialiser: a network trained on simulated (or measured) scans to give a first object.

- :mod:`.network`: the network (autocorrelation in, object out) and its architecture record;
- :mod:`.losses`: the passive (measurement) and active (canonical truth) training losses;
- :mod:`.data`: training samples from the corpus, or from measured scans;
- :mod:`.resample`: a measured frame onto the model's, and the object back;
- :mod:`.training`: ``cdi-dip train``;
- :mod:`.files`: model files (data, not code);
- :mod:`.initialiser`: the :class:`~cdi_dip.solvers.base.Initialiser` and ``--method net``.
"""
