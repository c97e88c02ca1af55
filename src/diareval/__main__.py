from diareval.cli import main

raise SystemExit(main())
