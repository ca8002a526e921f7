from reptile_engine.cli import main

raise SystemExit(main())
